package org.edgecnn.demo

import android.content.Context
import org.edgecnn.core.Bundle
import org.edgecnn.core.Metadata
import org.edgecnn.core.ModelCheck
import org.edgecnn.core.UnsupportedModelException
import java.io.File

/** A problem with the model the user can fix; [message] is shown on screen as is. */
class ModelException(message: String) : Exception(message)

/** The model file's bytes and the metadata read from its appended bundle. */
class LoadedModel(val name: String, val flatbuffer: ByteArray, val sizeBytes: Int, val metadata: Metadata)

/**
 * Finds and validates the model: `model.tflite` pushed to the app's files folder (no rebuild
 * needed), else `assets/model.tflite`, else the only `.tflite` in assets.
 */
object ModelSource {
    const val DEFAULT_NAME = "model.tflite"

    fun sideloadedFile(context: Context): File? = context.getExternalFilesDir(null)?.let { File(it, DEFAULT_NAME) }

    fun load(context: Context): LoadedModel {
        val (name, data) = read(context)
        val meta = try {
            ModelCheck.metadata(name, data)
        } catch (e: UnsupportedModelException) {
            throw ModelException(e.message ?: "$name cannot be used")
        }
        return LoadedModel(name, Bundle.flatbuffer(data), data.size, meta)
    }

    private fun read(context: Context): Pair<String, ByteArray> {
        val side = sideloadedFile(context)
        if (side != null && side.isFile) return side.path to side.readBytes()
        val assets = context.assets.list("")?.filter { it.endsWith(".tflite") }.orEmpty()
        val name = when {
            DEFAULT_NAME in assets -> DEFAULT_NAME
            assets.size == 1 -> assets[0]
            assets.isEmpty() -> throw ModelException(
                "No model found. Run 'edgecnn export android MODEL.tflite' and rebuild the app, " +
                    "or push one with: adb push MODEL.tflite ${side?.path ?: "<app files>/$DEFAULT_NAME"}")
            else -> throw ModelException("Several models in assets (${assets.joinToString()}); name the one to use $DEFAULT_NAME.")
        }
        return name to context.assets.open(name).use { it.readBytes() }
    }
}
